"""Learning: the networks, training, streamed scoring, query strategies, the iterations of a
project, and simulated-oracle experiments."""

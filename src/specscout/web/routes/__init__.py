"""The app's endpoints, one router per part of the page."""

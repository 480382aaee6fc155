"""What the loop delivers: the candidate catalogue, audits with honest intervals, the report,
and SAMP links to Virtual Observatory tools."""

"""What a finished scan says: bias by group, studies, and quality against a truth table."""

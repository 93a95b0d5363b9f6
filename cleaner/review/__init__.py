"""The review loop: a page of what a scan flagged, and the reviewer's decisions read back."""

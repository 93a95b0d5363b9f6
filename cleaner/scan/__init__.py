"""``cxclean scan``: score a whole archive with every detector, exclude, and resume after a crash."""
from cleaner.scan.runner import ScanError, format_summary, scan_archive

__all__ = ["ScanError", "format_summary", "scan_archive"]

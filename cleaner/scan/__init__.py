"""``cxclean scan``: score a whole archive with every detector, exclude, and resume after a crash.

The front door is ``scan_archive`` with a ``ScanConfig``; the scan folder it writes is described, and read
back, by ``cleaner.scan.folder``."""
from cleaner.scan.config import ScanConfig, ScanError
from cleaner.scan.detector_set import default_detector_dirs, parse_threshold_overrides, resolve_bundle_paths
from cleaner.scan.runner import scan_archive
from cleaner.scan.summary import format_summary
from cleaner.scan.targets import plan

__all__ = ["ScanConfig", "ScanError", "default_detector_dirs", "format_summary", "parse_threshold_overrides", "plan",
           "resolve_bundle_paths", "scan_archive"]

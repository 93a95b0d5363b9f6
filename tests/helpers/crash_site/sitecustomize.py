"""Put on the PYTHONPATH of a scan run as a subprocess to make its decode workers behave as they do in the field.
Tests only.

* an image whose name holds ``crash_me`` kills the process that opens it (SIGKILL), as a crashing native
  decoder does, every time;
* an image whose name holds ``hang_me`` makes the process that opens it hang for good, deaf to SIGTERM, as a
  native decoder looping on a crafted file does;
* ``CXCLEAN_TEST_OPEN_DELAY=S`` makes every image open take S seconds longer, so a test can catch workers busy.
"""
import os
import signal
import time

try:
    from PIL import Image
except ImportError:  # pragma: no cover
    Image = None

if Image is not None:
    _open = Image.open
    _delay = float(os.environ.get("CXCLEAN_TEST_OPEN_DELAY", "0") or 0)

    def _open_or_die(fp, *args, **kwargs):
        if "crash_me" in str(getattr(fp, "name", fp)):
            os.kill(os.getpid(), signal.SIGKILL)
        if "hang_me" in str(getattr(fp, "name", fp)):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            while True:
                time.sleep(1)
        if _delay:
            time.sleep(_delay)
        return _open(fp, *args, **kwargs)

    Image.open = _open_or_die

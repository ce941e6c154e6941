"""Drivers that play the daemon's part in the foreground: sensor ticks run in-process, and the ``mlops demo`` script."""

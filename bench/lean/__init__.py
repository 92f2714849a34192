"""The lean worker and the floor: the two same-run anchors of bench/throughput.py."""

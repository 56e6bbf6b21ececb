"""The play page: a local web page that plays a run through the live performer — a keyboard,
the timbre map as an XY pad, and the output drawn (``python -m ddsp_morph.play``)."""

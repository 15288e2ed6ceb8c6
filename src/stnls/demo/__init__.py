"""Demonstrations run by the ``stnls`` command.

:mod:`stnls.demo.align` holds the video-alignment experiment,
:mod:`stnls.demo.clips` reads clips (the bundled samples, image folders,
video files) and :mod:`stnls.demo.report` prints and saves the results. They
need the ``demo`` extra: ``pip install 'stnls[demo]'``.
"""

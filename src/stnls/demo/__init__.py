"""Demonstrations run by the ``stnls`` command.

:mod:`stnls.demo.align` holds the video-alignment experiment,
:mod:`stnls.demo.clips` reads clips (the bundled samples, image folders,
video files) and :mod:`stnls.demo.report` prints and saves the results. They
need the ``demo`` extra: ``pip install 'stnls[demo]'``.
"""


class DemoInputError(ValueError):
    """Bad input to a demo: a clip that cannot be found or read, or an invalid setting.

    The message is one line meant for the user (the command prints it as is).
    """

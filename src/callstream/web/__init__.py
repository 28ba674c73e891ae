"""The web UI served by ``callstream serve`` under ``/ui`` (``GET /`` redirects there):
the live call list, call details with the live transcript and the recording, and a
stream and fragment browser. Plain JavaScript modules and CSS from ``static/``, nothing
built or downloaded; the UI's own JSON endpoints under ``/ui/api`` reuse the server's
call store, media store and event bus. See :mod:`callstream.web.app`."""

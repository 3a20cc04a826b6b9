"""The media worker: the transcode and chunk job handlers, and the upload event handler."""

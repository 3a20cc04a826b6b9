"""The media API: uploads, presets and a transcode's outputs (the job routes are the kit's)."""

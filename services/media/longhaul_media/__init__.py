"""Longhaul media: upload, probe and transcode video to an adaptive-bitrate ladder."""

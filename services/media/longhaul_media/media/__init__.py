"""The media work itself: probing, planning chunks and ladders, and ffmpeg's commands.

Plain functions of files and numbers, testable without the queue or the bucket.
"""

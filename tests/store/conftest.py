from remote_storage import gcs_emulator, s3_emulator  # noqa: F401 - session fixtures: the emulators

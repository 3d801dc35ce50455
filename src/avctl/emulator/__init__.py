"""Stateful emulators of every device family, served over real HTTPS (see ``avctl.emulator.core``)."""

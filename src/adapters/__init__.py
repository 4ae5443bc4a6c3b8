"""Implementations of the application's ports, one folder per technology."""

"""The business of workcast: who assigns work to whom, and what each party must hear about it.

Standard library only, no I/O, no ``async``: everything here can be tested as plain Python.
"""

"""The user's face: the ``fleetcast`` command line, the demo, the HTML report and the sample data.

Imports from :mod:`fleetcast.stages` and :mod:`fleetcast.resources`; nothing imports from here
except the console script and the tests."""

"""The ``tabellion`` command line. Imports anything; imported by nothing."""

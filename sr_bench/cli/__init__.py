"""The ``srbench`` command line: parse, call one library function, render. No measurement logic here."""

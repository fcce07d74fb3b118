//! The Python OTLP receiver (tests/python/otlp_receiver.py): start it, query what it got, make it fail.

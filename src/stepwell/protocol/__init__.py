"""The wire: pure values and functions shared by the SDK and the engine, no I/O."""

//! Property test: random sequences of writes end with every replica equal to its primary.

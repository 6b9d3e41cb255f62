"""Activities: each opens its own session, commits once and is safe to run again."""

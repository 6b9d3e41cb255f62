"""The browser incident console, served by the API process (see docs/CONSOLE.md)."""

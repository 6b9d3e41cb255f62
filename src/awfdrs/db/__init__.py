"""PostgreSQL data layer: models, repositories, sessions."""

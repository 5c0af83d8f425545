"""prefect-venice: Venice.ai video generation for Prefect 3."""

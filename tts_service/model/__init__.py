"""The model: its voices and blends, and the engines loaded from its files at start-up."""

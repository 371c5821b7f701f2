"""What each request carries: templates and datasets rendered into prepared requests."""

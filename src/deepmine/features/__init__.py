"""One fitted preprocessor per column role, and the pipeline that runs them."""

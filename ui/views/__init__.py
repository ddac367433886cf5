"""The pages of the web app, each a Streamlit script."""

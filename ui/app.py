"""The web app: `arag ui` (or `streamlit run ui/app.py`) serves it on 127.0.0.1.

Three pages: Chat (threads, streamed answers with sources, per-message trace and retry),
Graph (the compiled graph with a question's path and each node's state) and Knowledge base
(documents, index statistics, model training).
"""

import sys
from pathlib import Path

# The pages are found next to this file, so the app runs the same from a checkout and from an
# installed wheel (site-packages/ui/).
VIEWS = Path(__file__).resolve().parent / "views"
#: The page scripts, with their titles and icons, in menu order; the first is the default.
PAGES = (
    ("chat.py", "Chat", ":material/chat:"),
    ("graph.py", "Graph", ":material/account_tree:"),
    ("knowledge.py", "Knowledge base", ":material/folder_open:"),
)


def main() -> None:
    import streamlit as st

    st.set_page_config(page_title="arag — ask your documents", page_icon=":material/menu_book:", layout="wide")
    pages = [st.Page(str(VIEWS / script), title=title, icon=icon, default=i == 0)
             for i, (script, title, icon) in enumerate(PAGES)]
    st.navigation(pages).run()


# Streamlit runs the app as the module "__main__"; importing it (tests, tools) draws nothing.
if __name__ == "__main__":
    # `streamlit run ui/app.py` puts ui/ on the path, not the folder that holds the packages
    # (the checkout; in site-packages this is a no-op).
    root = str(VIEWS.parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    main()

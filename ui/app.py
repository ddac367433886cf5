"""The web app: `arag ui` (or `streamlit run ui/app.py`) serves it on 127.0.0.1.

Three pages: Chat (threads, streamed answers with sources, per-message trace and retry),
Graph (the compiled graph with a question's path and each node's state) and Knowledge base
(documents, index statistics, model training).
"""

import sys
from pathlib import Path

# `streamlit run ui/app.py` puts ui/ on the path, not the project root that holds the packages.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

st.set_page_config(page_title="arag — ask your documents", page_icon=":material/menu_book:", layout="wide")
pages = [
    st.Page(str(ROOT / "ui" / "views" / "chat.py"), title="Chat", icon=":material/chat:", default=True),
    st.Page(str(ROOT / "ui" / "views" / "graph.py"), title="Graph", icon=":material/account_tree:"),
    st.Page(str(ROOT / "ui" / "views" / "knowledge.py"), title="Knowledge base", icon=":material/folder_open:"),
]
st.navigation(pages).run()

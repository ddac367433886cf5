"""Chat models: local GGUF models through llama.cpp, hosted ones through LangChain, and the
counting and structured-output paths every LLM call goes through.
"""

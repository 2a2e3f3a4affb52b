"""Framework adapters (``hivemem.adapters``): LangChain, LangGraph, LlamaIndex and MCP.

Each lives in its own module and needs its framework's extra
(``pip install 'hivemem[langchain]'`` and so on); importing this package loads none.
"""

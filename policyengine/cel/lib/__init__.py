"""The Kubernetes CEL function libraries, written for cel-python.

Each module owns one library and exposes ``functions()``: CEL function name -> implementation. Methods
are called as ``f(target, *args)``; namespaced functions (``lists.range``) are named with their dot.
``policyengine.cel.library`` merges the tables, combining overloads of one name across libraries.
"""

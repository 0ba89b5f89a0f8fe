"""`sseproxy probe`: many EventSource clients against any SSE endpoint, measured from the
client's side (connects, drops by how they were seen, gaps, lost and repeated ids).

Modules, top to bottom: `command` (the click command), `runner` (many clients over a run),
`client` (one EventSource over a trio stream), `record` (what was seen), `summary`,
`verdicts` and `output` (the result, its checks and its text), `journaling` (the result
as an sseproxy journal), `target` (the URL and how to connect to it). Nothing here is
imported by `import sseproxy.probe`: `sseproxy --help` stays quick.
"""

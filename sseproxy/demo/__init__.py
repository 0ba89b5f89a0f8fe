"""`sseproxy demo`: a one-command workshop (issue 11).

One process runs the built-in SSE server, the proxy with its control API and a web page
where a presenter opens EventSource clients, adds and removes faults, steps through a
story and watches every close on a live timeline. `app.py` puts the pieces together,
`door.py` gives them one origin, `catalog.py` tells the page what faults, presets and
story steps there are; `page/` is the page itself (plain HTML, CSS and JavaScript, no
build step, nothing fetched from the network).
"""

"""Exercise control during play (`drill run --control`): the control page (web.py, the only
module that knows Starlette and uvicorn), the root-only control socket in the run directory
(socket_server.py) and the commands both route to the exercise's control (commands.py)."""

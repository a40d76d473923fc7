"""The kitchen page (docs/WEB.md): one page, its JSON API and a live stream.

Nothing here imports aiohttp: the daemon imports ``stove_ctl.surfaces.web.server``
only when the config has a ``web:`` section, so a daemon without the page does not
load the web framework at all.
"""

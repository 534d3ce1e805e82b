"""Shaping a song beyond one clip: landing it in a key, composing it in sections, replacing a section.

Each feature is a plan over the studio's usual stages (prepare, generate, finish, write): the modules here
read and check what a request asks and do the audio work that is theirs alone.
"""

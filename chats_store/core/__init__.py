"""The spec's core module: a generic Redux-style store with reactive getters.

``reducer`` is the pure half (steps, commands, table reducers); ``store`` is the
runtime half (the Store and its getters, reactivex observables). This package
file imports neither, so importing the pure half never loads the runtime.
"""

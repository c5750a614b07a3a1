"""The problem a session explores: built from its config (``build``: the energy, the
minima, the data and the model), minima files and their formats (``minima``), the
minima folders ``nebtui train`` writes (``minima_folder``) and this user's vouches for
the code a session imports (``trust``)."""

"""The processes that run a session: the runner (``runner``, started by ``spawn`` in a
process of its own), its pair workers on this machine (``workers``) or on a Ray
cluster (``raypool``), the messages between them (``messages``), the devices and
thread shares they run on (``devices``) and the start-up timing of a session
(``timing``)."""

"""Networks as minima: the model zoo (``models``, ``cifar_models``), the data sets
(``data``: embedded digits and XOR; ``cifar``: CIFAR-10/100 from a local folder,
augmented on the device) and the training of minima (``training``). The energy
of a network over its data is ``engine.energy.network.NetworkEnergy``."""

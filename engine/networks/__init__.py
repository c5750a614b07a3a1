"""Networks as minima: the model zoo (``models``, ``cifar_models``, ``torchvision_zoo``),
where each parameter lives in the flat vector of a pivot (``layout``), the losses by
name (``loss``), the data sets (``data``: embedded digits and XOR; ``cifar``:
CIFAR-10/100 from a local folder, augmented on the device; ``datasets``: MNIST,
Fashion-MNIST, SVHN and image folders from a local folder, and a user's data
factory) and the training of
minima (``training``). The energy of a network over its data is built on these in
``engine.energy.network.NetworkEnergy``; nothing here imports ``engine.energy``."""

"""The reproduce hint about randomness: said only when the code draws numbers no seed fixes."""

from __future__ import annotations

import textwrap

import pytest

from trellis.analysis.seeding import draws_unseeded

pytestmark = pytest.mark.sqlite_only("analysis of code and dependencies: the store does not change what it checks")

SEEDED = [
    "import numpy as np\nSEED = 7\nrng = np.random.default_rng(SEED)\nx = rng.normal()",
    "import numpy as np\nrng = np.random.default_rng(seed=3)\nrng.integers(0, 9)",
    "from numpy.random import default_rng\nrng = default_rng(7)\nrng.random()",
    "import numpy as np\nnp.random.seed(0)\nx = np.random.rand(3)",
    "import random\nrandom.seed(1)\nrandom.random()",
    "import random\nrng = random.Random(5)\nrng.random()",
    "import numpy\nstate = numpy.random.RandomState(0)\nstate.rand()",
    "import torch\ntorch.manual_seed(0)\nx = torch.rand(3)",
    "import torch\ng = torch.Generator().manual_seed(0)\nx = torch.rand(3, generator=g)\ntorch.manual_seed(1)",
    "import numpy as np\nx = np.zeros(3)",
]
UNSEEDED = [
    "import numpy as np\nx = np.random.rand(3)",
    "import numpy as np\nrng = np.random.default_rng()\nrng.normal()",
    "import random\nrandom.shuffle(items)",
    "from random import random\nx = random()",
    "import random\nrng = random.SystemRandom()\nrng.random()",
    "import torch\nx = torch.randn(2)",
    "import numpy as np\nnp.random.seed(0)\nimport random\nrandom.random()",
]


@pytest.mark.parametrize("source", SEEDED)
def test_seeded_code_gets_no_hint(source):
    assert not draws_unseeded([textwrap.dedent(source)])


@pytest.mark.parametrize("source", UNSEEDED)
def test_unseeded_code_gets_the_hint(source):
    assert draws_unseeded([textwrap.dedent(source)])


def test_a_notebooks_cells_count_together_and_magics_do_not_stop_it():
    assert not draws_unseeded(["%matplotlib inline", "import numpy as np\nnp.random.seed(0)", "np.random.rand(2)"])
    assert draws_unseeded(["%time x = 1", "import numpy as np", "np.random.rand(2)"])

pytest_plugins = ["tests.support.pki", "tests.support.mosquitto", "tests.support.softhsm"]

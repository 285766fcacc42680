"""The repository's maintenance scripts: `lock` writes and checks the dependency locks (`make
lock`); install-system-deps.sh installs the Debian packages the suite needs. None of it ships."""

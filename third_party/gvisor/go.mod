// Files of gvisor.dev/gvisor as pvlink builds them, laid over the module's
// own by `make` (README.md here). This go.mod only keeps them out of
// pvlink's packages; nothing imports this directory.
module gvisor.dev/gvisor

go 1.24

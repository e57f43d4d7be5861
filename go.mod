module github.com/keel-boot/keel

go 1.26.0

require (
	github.com/anatol/devmapper.go v0.0.0-20220907161421-ba4de5fc0fd1
	github.com/hugelgupf/vmtest v0.0.0-20240307030256-5d9f3d34a58d
	github.com/klauspost/compress v1.20.3
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/Netflix/go-expect v0.0.0-20220104043353-73e0943537d2 // indirect
	github.com/creack/pty v1.1.21 // indirect
	github.com/stretchr/testify v1.8.1 // indirect
	golang.org/x/sync v0.6.0 // indirect
)

module warren/interop/go

go 1.19

require github.com/rabbitmq/amqp091-go v1.5.0

// Built offline from Debian's packaged source (golang-github-rabbitmq-amqp091-go-dev).
replace github.com/rabbitmq/amqp091-go => /usr/share/gocode/src/github.com/rabbitmq/amqp091-go

replace go.uber.org/goleak => /usr/share/gocode/src/go.uber.org/goleak

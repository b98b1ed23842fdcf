package rds

import (
	"net/http"

	"github.com/rdslocal/rdslocal/api"
)

// The RDS faults with their wire codes and HTTP statuses from the service
// model. Messages follow RDS's texts.

func invalidIdentifier(param string) error {
	return api.InvalidParameterValue("The parameter %s is not a valid identifier. Identifiers must begin with a letter; must contain only ASCII letters, digits, and hyphens; and must not end with a hyphen or contain two consecutive hyphens.", param)
}

func proxyNotFound(name string) error {
	return api.NewError(http.StatusNotFound, "DBProxyNotFoundFault",
		"The specified proxy name %s doesn't correspond to a proxy owned by your Amazon Web Services account in the specified Amazon Web Services Region.", name)
}

func proxyAlreadyExists(name string) error {
	return api.NewError(http.StatusBadRequest, "DBProxyAlreadyExistsFault",
		"The specified proxy name %s must be unique for all proxies owned by your Amazon Web Services account in the specified Amazon Web Services Region.", name)
}

func proxyQuotaExceeded() error {
	return api.NewError(http.StatusBadRequest, "DBProxyQuotaExceededFault",
		"Your Amazon Web Services account already has the maximum number of proxies in the specified Amazon Web Services Region.")
}

func endpointNotFound(name string) error {
	return api.NewError(http.StatusNotFound, "DBProxyEndpointNotFoundFault", "The DB proxy endpoint %s doesn't exist.", name)
}

func endpointAlreadyExists(name string) error {
	return api.NewError(http.StatusBadRequest, "DBProxyEndpointAlreadyExistsFault",
		"The specified DB proxy endpoint name %s must be unique for all DB proxy endpoints owned by your Amazon Web Services account in the specified Amazon Web Services Region.", name)
}

func endpointQuotaExceeded(proxy string) error {
	return api.NewError(http.StatusBadRequest, "DBProxyEndpointQuotaExceededFault", "The DB proxy %s already has the maximum number of endpoints.", proxy)
}

func invalidEndpointState(format string, args ...any) error {
	return api.NewError(http.StatusBadRequest, "InvalidDBProxyEndpointStateFault", format, args...)
}

func targetGroupNotFound(group, proxy string) error {
	return api.NewError(http.StatusNotFound, "DBProxyTargetGroupNotFoundFault",
		"The specified target group %s isn't available for the proxy %s owned by your Amazon Web Services account in the specified Amazon Web Services Region.", group, proxy)
}

func targetNotFound(id, proxy string) error {
	return api.NewError(http.StatusNotFound, "DBProxyTargetNotFoundFault",
		"The specified RDS DB instance or Aurora DB cluster %s isn't available for the proxy %s owned by your Amazon Web Services account in the specified Amazon Web Services Region.", id, proxy)
}

func targetAlreadyRegistered(format string, args ...any) error {
	return api.NewError(http.StatusBadRequest, "DBProxyTargetAlreadyRegisteredFault", format, args...)
}

func instanceNotFound(id string) error {
	return api.NewError(http.StatusNotFound, "DBInstanceNotFound", "DBInstance %s not found.", id)
}

func instanceAlreadyExists() error {
	return api.NewError(http.StatusBadRequest, "DBInstanceAlreadyExists", "DB instance already exists")
}

func invalidInstanceState(format string, args ...any) error {
	return api.NewError(http.StatusBadRequest, "InvalidDBInstanceState", format, args...)
}

func clusterNotFound(id string) error {
	return api.NewError(http.StatusNotFound, "DBClusterNotFoundFault", "DBCluster %s not found.", id)
}

func clusterAlreadyExists() error {
	return api.NewError(http.StatusBadRequest, "DBClusterAlreadyExistsFault", "DB Cluster already exists")
}

func invalidClusterState(format string, args ...any) error {
	return api.NewError(http.StatusBadRequest, "InvalidDBClusterStateFault", format, args...)
}

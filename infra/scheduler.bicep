// The optional Durable Task Scheduler backend: a scheduler, the app's task hub and the
// identity's data role on that hub. The app's settings that point the Durable extension here
// are in app.bicep.

@description('Region of the scheduler; the same as the app keeps latency down.')
param location string

@description('Tags for every resource.')
param tags object

@description('Scheduler name: 3 to 64 letters, digits or hyphens; its endpoint is public DNS, so unique.')
@minLength(3)
@maxLength(64)
param name string

@description('Consumption (pay per action) or Dedicated (capacity units).')
@allowed(['Consumption', 'Dedicated'])
param skuName string

@description('Task hub name: the hubName in the app\'s host.json.')
param taskHubName string

@description('Principal id of the app\'s user-assigned identity.')
param principalId string

// Durable Task Data Contributor: schedule, run, query and purge orchestrations in the hub.
var durableTaskDataContributor = '0ad04412-c4d5-4796-b79c-f76d14c8d402'

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    // The resource provider requires an allow list. Flex Consumption egress addresses are not
    // fixed without a virtual network, so it stays open; every call still needs an Entra token
    // with the data role below.
    ipAllowlist: [
      '0.0.0.0/0'
    ]
    sku: skuName == 'Dedicated' ? {
      name: skuName
      capacity: 1
    } : {
      name: skuName
    }
  }
}

resource taskHub 'Microsoft.DurableTask/schedulers/taskHubs@2025-11-01' = {
  parent: scheduler
  name: taskHubName
}

// Scoped to the task hub, not the scheduler: another app's hub on the same scheduler stays closed.
resource dataRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(taskHub.id, principalId, durableTaskDataContributor)
  scope: taskHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', durableTaskDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output endpoint string = scheduler.properties.endpoint
output taskHubName string = taskHub.name
